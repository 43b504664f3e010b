"""False-negative calibration: hide known positives, mine, and count how many come back as negatives.

`folds` hides one positive per multi-positive query (seeded, several folds); `replay` turns a calibration
run's recorded candidates into the negatives any selection setting would keep, and measures the leak (hidden
positives kept as negatives) and the fill (queries that keep their full quota); `frontier` builds the grid,
the leak/fill frontier and the recommendation.
"""
