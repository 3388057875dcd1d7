"""Accuracy and the confusion matrix of a network on a data iterator."""

import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import data
from d2lnets.evaluate import accuracy_from_confusion, confusion_matrix, evaluate_accuracy, per_class_accuracy


@pytest.fixture(scope='module')
def net_and_data():
    net = d2lnets.get_model('lenet')
    net.initialize(mx.init.Xavier())
    _, test_iter = data.load_fashion_mnist(64, limit=500)
    return net, test_iter


def test_confusion_matrix_counts_predictions(net_and_data):
    net, test_iter = net_and_data
    predicted = np.concatenate([net(X).argmax(axis=1).asnumpy() for X, _ in test_iter]).astype(int)
    expected = np.zeros((10, 10), np.int64)
    np.add.at(expected, (test_iter.labels.astype(int), predicted), 1)
    matrix = confusion_matrix(net, test_iter, 10, mx.cpu())
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 500
    accuracy = accuracy_from_confusion(matrix)
    assert accuracy == pytest.approx(evaluate_accuracy(net, test_iter, mx.cpu()), abs=1e-12)
    assert accuracy == pytest.approx(np.mean(predicted == test_iter.labels), abs=1e-12)
    # Two devices count the same.
    net.collect_params().reset_ctx([mx.cpu(0), mx.cpu(1)])
    try:
        np.testing.assert_array_equal(confusion_matrix(net, test_iter, 10, [mx.cpu(0), mx.cpu(1)]), expected)
    finally:
        net.collect_params().reset_ctx(mx.cpu(0))


def test_per_class_accuracy():
    m = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    np.testing.assert_allclose(per_class_accuracy(m), [0.75, np.nan, 0.5])
