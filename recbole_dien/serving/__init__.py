"""What works on a trained model's checkpoint: top-K recommendations (:mod:`.recommend`), a
torch-only or ONNX serving program (:mod:`.export`, int8 with :mod:`.quantize`), scoring raw
requests with it (:class:`Scorer`, :mod:`.scorer`) and attention heatmaps (:mod:`.attention_plot`)."""
from recbole_dien.serving.scorer import Request, Scorer, Scores, ScoringError

__all__ = ["Request", "Scorer", "Scores", "ScoringError"]
