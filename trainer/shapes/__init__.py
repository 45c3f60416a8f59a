"""A procedural world small enough to close the fine-tuning loop on a CPU, with ground truth (issue 15).

`world`: scenes, their renders and captions, the held-out subject and style. `checker`: what an
image shows, measured from its pixels, and the three factors scored against the truth.
"""
