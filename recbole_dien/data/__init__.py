from recbole_dien.data.utils import check_dataset, create_dataset

__all__ = ["check_dataset", "create_dataset"]
