"""Label-free health monitors of a run and its online kNN probe (see docs/training.md,
"Health monitors and the kNN probe")."""

from lt_train._monitor._args import CollapseArgs, MonitorArgs, ValArgs
from lt_train._monitor._knn import knn_accuracy, knn_scores
from lt_train._monitor._monitor import Monitor, auto_sample_size
from lt_train._monitor._spectrum import alpha_req, embedding_std, rankme
from lt_train._monitor._val_data import ValListing, list_val_data

__all__ = [
    "CollapseArgs",
    "Monitor",
    "MonitorArgs",
    "ValArgs",
    "ValListing",
    "alpha_req",
    "auto_sample_size",
    "embedding_std",
    "knn_accuracy",
    "knn_scores",
    "list_val_data",
    "rankme",
]
