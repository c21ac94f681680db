"""Scoring at scale on Ray: many input files scored in parallel by a pool of workers that each hold one model."""
