"""Publishing a finished run: its model card, the Hub's README.md (``model_card``), and the upload of what a user
of the model needs to the Hugging Face Hub (``hub``)."""
