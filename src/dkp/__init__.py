"""dkp: reproducibility pipeline for Dynamic Knowledge Propagation (Kim et al., ICCV 2021)."""

__version__ = "0.1.0"
