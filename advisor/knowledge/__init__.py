"""The knowledge base: cards in knowledge/*.md and their search."""
