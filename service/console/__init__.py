"""The governance console: read-only HTML pages of a tenant's requests, deadlines, versions and evidence, served by
the API process under /console to people who sign in with one of the tenant's API keys."""
