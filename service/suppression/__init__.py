"""The suppression list: every training sample of a model that was forgotten, or is being forgotten, and so must
never be trained on again; read in cursor pages or exported as CSV."""
