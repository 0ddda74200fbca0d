"""Continuous training: corpus intake, training, CTranslate2 export, evaluation and promotion."""
