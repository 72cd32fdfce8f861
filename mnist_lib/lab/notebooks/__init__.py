"""Repository tools: where things live, the notebook chain and its settings, the Colab cells."""
