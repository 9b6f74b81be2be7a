from recbole_dien.data.checks import check_dataset
from recbole_dien.data.utils import create_dataset

__all__ = ["check_dataset", "create_dataset"]
