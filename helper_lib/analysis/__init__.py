"""The analysis behind notebooks 06 to 09: the lecture's model measured and looked inside.

* :mod:`~helper_lib.analysis.registry`: every shipped checkpoint by name (:data:`PRETRAINED`,
  notebook 07's :data:`SWEEP`); :mod:`~helper_lib.analysis.sweep` loads one, or trains it in
  smoke mode.
* :mod:`~helper_lib.analysis.report`, :mod:`~helper_lib.analysis.sample_quality`: the test
  report of a model; samples judged by a classifier.
* :mod:`~helper_lib.analysis.posterior`, :mod:`~helper_lib.analysis.attributes`: true and
  aggregate posteriors; latent arithmetic with measured attributes.
* :mod:`~helper_lib.analysis.film`: the latent space forming during training, and its file.
* Their figures: :mod:`~helper_lib.analysis.sweep_plots` (07),
  :mod:`~helper_lib.analysis.latent_plots` (08, 09), :mod:`~helper_lib.analysis.film_plots`.
"""
