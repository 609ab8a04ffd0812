# ---
# name: Histogram
# description: Histogram of an image's pixel values.
# version: 0.1.0
# requirements:
#   - numpy
#   - matplotlib>=3.8
# inputs:
#   type: object
# ---
import numpy as np
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        await api.log("histogram ready")

    async def histogram(self, image, bins=64):
        counts, edges = np.histogram(np.asarray(image), bins=bins)
        return {"counts": counts.tolist(), "edges": edges.tolist()}


api.export(ImJoyPlugin())
