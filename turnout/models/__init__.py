"""Loading of the packaged encoders and classifiers shared by signals, selection and plugins."""

from turnout.models.encoders import Encoder, get_encoder

__all__ = ["Encoder", "get_encoder"]
