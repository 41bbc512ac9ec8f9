"""rerank-pipeline's library: what the thin `stages/` scripts share, one concern per module.

- params: the params.yaml schema, loaded and cross-checked before any stage works
- errors: one-line errors for bad input, a summary line for bugs
- models, token_ids, losses: the cross-encoder, its token-id input, the loss named in params
- data, mining, tokenizing: download, hard-negative mining and token ids
- evaluation/: collections, first stages, runs, per-query metrics and significance
- card/: the model card and its template
"""
