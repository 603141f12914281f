"""Running envsteward's deployments: the embedded runner and the local demo."""
