"""Static and dynamic int8 quantization: calibration data, observers, QDQ planning, evaluation."""
