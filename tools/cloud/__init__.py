"""Model delivery: signed manifests, publishing, the device's sync client, SageMaker."""
