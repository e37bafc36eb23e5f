"""The life of a deletion request below the domains that move it: its state machine and the sample claims that
follow its states. The intake (service/requests) and the jobs that carry requests out (service/jobs) both use it."""
