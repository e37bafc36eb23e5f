"""Developer tools that use the service as a client would, through unlearning_client: the README's walkthrough
(`python -m tools.demo_walkthrough`) and the load test (`python -m tools.loadtest`). They are not installed
with the service; run them from the repository root."""
