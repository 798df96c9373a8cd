"""TFLite targets: the IR emitted as a TensorFlow program with NHWC activations, then converted."""
