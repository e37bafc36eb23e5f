"""Erasure everywhere: artefacts holding forgotten samples are destroyed once their model's retention window
ends, orphaned objects are removed, and each deletion request gets a signed erasure receipt."""
