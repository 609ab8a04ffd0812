# ---
# name: Forgot The Fence
# requirements: [numpy]
import numpy as np
from imjoy import api

api.export({})
