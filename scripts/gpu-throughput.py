"""Seconds per training epoch of the gpu profile's model on full Fashion-MNIST, fp32 vs bf16 autocast and
channels_last, at two widths and batch sizes: the numbers the gpu profile is sized from."""
import sys, time, torch
from unlearning.data import load_dataset
from unlearning.models import build_model
from unlearning.specs import ArchSpec, DatasetSpec

dev = "cuda"
torch.backends.cudnn.benchmark = True
data = load_dataset(DatasetSpec("idx", "/usr/share/datasets/fashion-mnist"), device=dev)
x, y = data.train.x, data.train.y
print("train", tuple(x.shape), x.dtype, flush=True)
for width in (32, 64):
    for bs in (256, 1024):
        for mode in ("fp32", "bf16+cl"):
            model = build_model(ArchSpec("resnet18_cifar", num_classes=10, in_channels=1, image_size=28, width=width)).to(dev)
            if mode != "fp32":
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            def epoch(limit=None):
                perm = torch.randperm(len(x), device=dev)
                n = 0
                for i in range(0, len(x), bs):
                    idx = perm[i:i + bs]
                    xb = x[idx].float()
                    if mode != "fp32":
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "fp32"):
                        loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    n += 1
                    if limit and n >= limit:
                        break
                torch.cuda.synchronize()
            epoch(limit=20)
            t = time.perf_counter(); epoch(); dt = time.perf_counter() - t
            print(f"width {width} batch {bs} {mode}: {dt:.2f} s/epoch", flush=True)
