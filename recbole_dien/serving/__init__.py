"""What works on a trained model's checkpoint: top-K recommendations (:mod:`.recommend`), a
torch-only serving program (:mod:`.export`) and attention heatmaps (:mod:`.attention_plot`)."""
