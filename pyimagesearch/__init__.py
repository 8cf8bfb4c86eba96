"""Reproductions of GoogLeNet, Inception-ResNet-v2 and the CIFAR ResNets in MXNet / Gluon."""

from pyimagesearch.runtime import configure_threads, ignore_signals_in_decoding_server

ignore_signals_in_decoding_server()  # first: the decoding processes' fork server imports us
configure_threads()
