"""Synthetic data the project makes for itself: real-looking videos with known scores and boxes
(:mod:`aqa.synthetic.dataset`, drawn by :mod:`aqa.synthetic.scene`) and feature stores with a
known learnable signal (:mod:`aqa.synthetic.features`), for the demo, tests and benchmarks."""
