"""The lab's back end: plain functions and classes the Gradio app wires, no gradio inside.

One job per module:
- uploads.py   uploaded files and zips into a session's dataset folder (checked by content, zip-slip
               and zip-bomb safe), folders on the server inside allowed roots, per-session folders
- datasets.py  a dataset folder -> report (count, sizes, thumbnails, problems, the advisor's opinion)
- jobs.py      JobQueue: one training per GPU, FIFO with places, stop/resume, reattach after a reload
- views.py     a run folder -> progress, loss curve, samples, log tail, summary (what the UI polls)
- results.py   at the end: base vs fine-tuned images, scores, downloads, the user's rating
- paths.py     where uploads, runs and allowed data folders are (environment variables)

Importing any of these never imports torch: heavy work imports it inside the function that needs it.
"""
