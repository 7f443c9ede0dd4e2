"""solargen: the comparative study of generative models on SDO/AIA 193 Å images, as a workflow.

The package follows the study's data path: ``acquire`` → ``calibrate`` → ``normalise`` →
``dataset`` → ``train`` → ``sample`` → ``evaluate`` → ``report``.
"""

__version__ = "0.1.0"
