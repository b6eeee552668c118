"""TensorFlow Serving on Kubernetes: manifest templates and their renderer (render.py)."""
