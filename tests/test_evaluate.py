"""Accuracy and the confusion matrix of a network on a data iterator."""
import mxnet as mx
import numpy as np
import pytest

import d2lnets
from d2lnets import data
from d2lnets.training.metrics import accuracy_from_confusion, confusion_matrix, evaluate_accuracy, per_class_accuracy


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


def test_batches_smaller_than_the_device_count_are_counted_exactly(net_and_data):
    """A batch of one example on two devices goes to one of them; the counts
    are those of one device."""
    from d2lnets.training.metrics import split_batch
    two = [mx.cpu(0), mx.cpu(1)]
    X, y = mx.nd.arange(3 * 4).reshape(3, 4), mx.nd.arange(3)
    xs, ys = split_batch(X, y, two)
    assert [(x.shape[0], x.context) for x in xs] == [(2, mx.cpu(0)), (1, mx.cpu(1))]
    xs, ys = split_batch(X[:1], y[:1], two)
    assert [(x.shape[0], x.context) for x in xs] == [(1, mx.cpu(0))] and ys[0].asnumpy().tolist() == [0]
    net, test_iter = net_and_data
    singles = [(X[i:i + 1], y[i:i + 1]) for X, y in list(test_iter)[:1] for i in range(5)]
    expected = confusion_matrix(net, singles, 10, mx.cpu())
    net.collect_params().reset_ctx(two)
    try:
        np.testing.assert_array_equal(confusion_matrix(net, singles, 10, two), expected)
        assert evaluate_accuracy(net, singles, two) == accuracy_from_confusion(expected)
    finally:
        net.collect_params().reset_ctx(mx.cpu(0))
    assert expected.sum() == 5


def test_the_confusion_matrix_pass_keeps_the_most_confident_mistakes(net_and_data):
    """Over 500 test images in batches of 64 (the last one of 52), on one device and on two."""
    from d2lnets.explain.mistakes import TopMistakes
    net, test_iter = net_and_data
    out = np.concatenate([net(X).asnumpy() for X, _ in test_iter])
    probs = np.exp(out - out.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    predicted, labels = probs.argmax(axis=1), test_iter.labels.astype(int)
    wrong = [i for i in np.argsort(-probs.max(axis=1), kind='stable') if predicted[i] != labels[i]][:7]
    for ctxs in ([mx.cpu()], [mx.cpu(0), mx.cpu(1)]):
        net.collect_params().reset_ctx(ctxs)
        top = TopMistakes(7)
        try:
            matrix = confusion_matrix(net, test_iter, 10, ctxs, mistakes=top)
        finally:
            net.collect_params().reset_ctx(mx.cpu(0))
        assert matrix.sum() == 500
        got = top.result()
        assert [m.index for m in got] == wrong
        assert [(m.true, m.predicted) for m in got] == [(labels[i], predicted[i]) for i in wrong]
        np.testing.assert_allclose([m.probability for m in got], probs.max(axis=1)[wrong], rtol=1e-5)


def test_evaluate_saved_reports_what_the_shipped_lenet_gets_wrong():
    from d2lnets.explain.mistakes import most_confused
    from d2lnets.training.runs import evaluate_saved
    result = evaluate_saved('lenet', pretrained=True, limit=1000, mistakes=5)
    assert result['matrix'].sum() == 1000
    images, labels = data.load_arrays('fashion-mnist', train=False)
    net = d2lnets.get_model('lenet', pretrained=True)
    for m in result['mistakes']:
        out = net(mx.nd.array(data.to_tensor(images[m.index:m.index + 1])))[0]
        assert m.true == labels[m.index] != m.predicted == int(out.argmax(axis=0).asscalar())
        assert m.probability == pytest.approx(float(mx.nd.softmax(out).max().asscalar()), rel=1e-5)
    assert len(result['mistakes']) == 5
    probabilities = [m.probability for m in result['mistakes']]
    assert probabilities == sorted(probabilities, reverse=True)
    assert result['confused'] == most_confused(result['matrix'], 10)
    assert result['confused'][0].count == max(result['matrix'][t, p] for t in range(10) for p in range(10) if t != p)
