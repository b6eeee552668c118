"""BottleneckCache: frozen-layer outputs for every image, computed once and cached."""
