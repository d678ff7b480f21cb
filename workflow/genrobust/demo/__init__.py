"""Offline stand-ins for downloads: procedural datasets in the real on-disk layouts and tiny
random-weight models saved in the real diffusers/transformers formats."""
