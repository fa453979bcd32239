"""sentscale: PromptEOL sentence embeddings from decoder-only LMs, evaluated with SentEval.

Modules, one concern each:
  data        SentEval-exact loaders for the 14 tasks, data fingerprints
  evaluation  ``evaluate(encode, tasks, data_dir)`` - the public evaluation API
  sts         STS scoring (cosine, Pearson/Spearman, SimCSE-style ``all``)
  transfer    SentEval transfer protocol (logistic regression, nested CV)
  prompts     PromptEOL templates, preprocessing, in-context demonstrations
  models      the model registry and loading
  provision   offline model provisioning (GGUF inside PyPI wheels -> safetensors)
  embed       the PromptEOL embedder (``Embedder.encode``)
  cli         ``sentscale`` command line
"""

__version__ = "0.1.0"
