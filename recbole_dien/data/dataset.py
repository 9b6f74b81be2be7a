"""The plugin's own ``<Model>Dataset`` classes; :func:`recbole_dien.data.create_dataset` prefers
them over RecBole's for the plugin's models."""
