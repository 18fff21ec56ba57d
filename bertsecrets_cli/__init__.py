"""bertsecrets: analyse the self-attention heads of BERT-like encoders (Kovaleva et al. 2019 and beyond)."""

__version__ = "0.1.0"
