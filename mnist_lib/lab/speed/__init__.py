"""How training is made fast without changing what it computes: the ghost batches of a step on
parallel threads (`shards`), several seeds in one step and the whole step as one CUDA graph
(`stacked`), and the `fit` twins that use them (`together`)."""
