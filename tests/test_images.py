"""Image files in: one reader for every network (8-bit, 16-bit and float
pixels, a pixel limit checked before decoding), and ImageNet's preprocessing
in numpy, equal to GluonCV's ``transform_eval`` bit for bit."""
import struct
import time
import zlib

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from d2lnets import cli
from d2lnets.datasets import IMAGENET_EVAL
from d2lnets.deploy import images
from d2lnets.data import load_arrays

from conftest import make_picture


# --- ImageNet preprocessing: GluonCV's transform_eval, in numpy ---------------------------

def test_preprocessing_is_gluoncvs_transform_eval(tmp_path):
    from gluoncv.data.transforms.presets.imagenet import transform_eval
    rgb = make_picture(tmp_path / 'p.png')
    image = images.read_image(tmp_path / 'p.png', 'RGB')
    assert isinstance(image, np.ndarray)
    np.testing.assert_array_equal(image, rgb)
    np.testing.assert_array_equal(image, mx.image.imread(str(tmp_path / 'p.png')).asnumpy())   # OpenCV's decoding
    x = images.prepare([str(tmp_path / 'p.png')], IMAGENET_EVAL, (3, 224, 224))   # predict's one path
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_array_equal(x, transform_eval(mx.nd.array(image, dtype='uint8')).asnumpy())
    # The centre crop of the resized 256 x 341 image, normalized per channel.
    resized = mx.image.imresize(mx.nd.array(image, dtype='uint8'), 341, 256)
    crop = resized[16:240, 58:282].asnumpy().astype('float32') / 255
    norm = IMAGENET_EVAL.normalization
    expected = ((crop - norm['mean']) / norm['std']).transpose(2, 0, 1)
    np.testing.assert_allclose(x[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('height, width', [(300, 400), (500, 333), (224, 224), (512, 512), (511, 1023),
                                           (30, 40)], ids=str)
def test_imagenet_input_equals_transform_eval_on_noise(height, width):
    """Random pixels (where every rounding shows): landscape, portrait, the
    crop size, an exact halving (OpenCV's area path), odd sizes, upscaling."""
    from gluoncv.data.transforms.presets.imagenet import transform_eval
    rgb = np.random.RandomState(height * width).randint(0, 256, (height, width, 3)).astype(np.uint8)
    expected = transform_eval(mx.nd.array(rgb, dtype='uint8')).asnumpy()[0]
    np.testing.assert_array_equal(images.imagenet_input(rgb), expected)


@pytest.mark.parametrize('shape, size', [((300, 400, 3), (256, 341)), ((97, 61, 1), (200, 130)),
                                         ((64, 64, 3), (32, 32)), ((50, 80, 3), (49, 81))], ids=str)
def test_resize_uint8_is_opencvs_bit_for_bit(shape, size):
    src = np.random.RandomState(0).randint(0, 256, shape).astype(np.uint8)
    expected = mx.image.imresize(mx.nd.array(src, dtype='uint8'), size[1], size[0]).asnumpy()
    np.testing.assert_array_equal(images.resize_uint8(src, *size), expected.reshape(size + shape[2:]))


def test_imagenet_input_refuses_other_arrays():
    with pytest.raises(ValueError, match=r'expected an \(H, W, 3\) uint8 RGB image, got float32'):
        images.imagenet_input(np.zeros((300, 400, 3), np.float32))
    with pytest.raises(ValueError, match=r'got uint8 of shape \(300, 400\)'):
        images.imagenet_input(np.zeros((300, 400), np.uint8))


# --- 16-bit and float pixels: scaled, not clipped -----------------------------------------

@pytest.fixture(scope='module')
def boot():
    """The first ankle boot (class 9) of the real Fashion-MNIST test set, (28, 28) uint8."""
    pictures, labels = load_arrays('fashion-mnist', train=False, download=False)
    return pictures[np.flatnonzero(labels == 9)[0]]


def save_variants(folder, gray):
    """``gray`` (uint8) as an 8-bit PNG, a 16-bit PNG, a 16-bit TIFF and a float TIFF."""
    paths = {'8-bit': folder / 'boot8.png', '16-bit': folder / 'boot16.png', '16-bit TIFF': folder / 'boot16.tif',
             'float': folder / 'bootf.tif'}
    Image.fromarray(gray).save(paths['8-bit'])
    Image.fromarray(gray.astype(np.uint16) * 257).save(paths['16-bit'])          # 255 -> 65535
    Image.fromarray(gray.astype(np.uint16) * 257).save(paths['16-bit TIFF'])
    Image.fromarray(gray.astype(np.float32) / 255, 'F').save(paths['float'])     # 255 -> 1.0
    assert [Image.open(p).mode for p in paths.values()] == ['L', 'I;16', 'I;16', 'F']
    return {k: str(p) for k, p in paths.items()}


def predictions(capsys, *argv):
    assert cli.main([str(a) for a in argv]) == 0
    out, err = capsys.readouterr()
    assert err == ''
    blocks = out.strip().split('\n')
    return [blocks[i + 1:i + 4] for i in range(0, len(blocks), 4)]   # 3 lines per image after its path


def test_16_bit_and_float_images_are_classified_as_the_8_bit_one(tmp_path, capsys, boot):
    paths = save_variants(tmp_path, boot)
    for path in paths.values():
        np.testing.assert_array_equal(images.read_image(path), boot, err_msg=path)
        np.testing.assert_array_equal(images.read_image(path, 'RGB'), np.repeat(boot[..., None], 3, axis=2))
    # Through the command line, with the shipped LeNet: the same classes and probabilities.
    eight, *others = predictions(capsys, 'predict', 'lenet', '--pretrained', *paths.values())
    assert eight[0].split()[2:] == ['ankle', 'boot']
    assert others == [eight] * 3


def test_16_bit_pixels_are_scaled_from_their_range(tmp_path):
    ramp = np.linspace(0, 65535, 510).astype(np.uint16).reshape(15, 34)
    Image.fromarray(ramp).save(tmp_path / 'ramp.png')
    got = images.read_image(tmp_path / 'ramp.png')
    np.testing.assert_array_equal(got, np.rint(ramp / 257.0).astype(np.uint8))   # v / 257 is never a tie
    # Every 8-bit level appears; Pillow's convert('L') would clip all but the first 2 to 255.
    assert len(np.unique(got)) == 256
    # 16-bit colour (48-bit PNG): Pillow keeps each channel's high byte, the same scale.
    import cv2
    rgb = make_picture(tmp_path / 'p8.png')
    cv2.imwrite(str(tmp_path / 'p16.png'), rgb[:, :, ::-1].astype(np.uint16) * 257)
    np.testing.assert_array_equal(images.read_image(tmp_path / 'p16.png', 'RGB'), rgb)


@pytest.mark.parametrize('pixels, message', [
    (np.full((8, 8), 255, np.float32), r"holds float pixels from 255 to 255; d2lnets reads float images with "
                                       r"values in \[0, 1\]"),
    (np.array([[0.5, np.nan]], np.float32), 'holds float pixels from'),
    (np.full((8, 8), 70000, np.int32), r"has pixels of Pillow mode 'I' \(I;32S\), whose range d2lnets does not "
                                       r"know; save it as an 8- or 16-bit PNG or as a JPEG"),
], ids=['float 0-255', 'float NaN', '32-bit integers'])
def test_pixels_of_unknown_range_are_refused(tmp_path, capsys, pixels, message):
    path = tmp_path / 'odd.tif'
    Image.fromarray(pixels).save(path)
    for mode in ('L', 'RGB'):
        with pytest.raises(ValueError, match=message):
            images.read_image(path, mode)
    assert cli.main(['predict', 'lenet', '--pretrained', str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err


# --- one pixel limit, checked before decoding ---------------------------------------------

def png_header(width, height):
    """A PNG that announces ``width`` x ``height`` 8-bit gray pixels but holds
    one row: a few hundred bytes, yet decoding it allocates the whole image."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * (width + 1))) + chunk(b'IEND', b''))


@pytest.mark.parametrize('side, pixels', [(20000, '400000000'), (10000, '10000 x 10000 = 100000000')])
def test_too_many_pixels_are_refused_before_decoding_on_both_paths(tmp_path, capsys, cache, monkeypatch,
                                                                  side, pixels):
    """20000^2 is beyond Pillow's own error threshold; 10000^2 only beyond its
    warning one, where d2lnets' limit (the same for every path) refuses it."""
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:9/')     # no weights are ever fetched
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_header(side, side))
    message = '%s has %s pixels, more than the %d that d2lnets decodes' % (path, pixels, images.MAX_PIXELS)
    start = time.perf_counter()
    for read in (images.read_image, lambda p: images.read_image(p, 'RGB')):
        with pytest.raises(ValueError) as info:
            read(path)
        assert str(info.value).startswith(message)
    for name in ('lenet', 'vgg11'):    # the Fashion-MNIST path and the ImageNet path
        assert cli.main(['predict', name, '--pretrained', str(path)]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert time.perf_counter() - start < 5     # decoding 400 megapixels would take far longer
    # Below the limit the same kind of file is decoded (Pillow fills the missing rows).
    path.write_bytes(png_header(300, 200))
    assert images.read_image(path).shape == (200, 300)


def test_missing_and_unreadable_files_say_so_the_same_way_on_both_paths(tmp_path):
    (tmp_path / 'n.png').write_text('not an image')
    for read in (images.read_image, lambda p: images.read_image(p, 'RGB')):
        with pytest.raises(FileNotFoundError, match='no such image file: .*missing.png'):
            read(tmp_path / 'missing.png')
        with pytest.raises(ValueError, match=r'cannot read .*n.png as an image \(.*\); give a PNG or JPEG file'):
            read(tmp_path / 'n.png')


# --- EXIF orientation: the image as a viewer shows it ---------------------------------------

def save_jpeg(path, pixels, orientation=None):
    """``pixels`` as a JPEG; with an EXIF Orientation tag when ``orientation`` is given."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(pixels)).convert('RGB').save(path, quality=90, exif=exif)
    return str(path)


# Orientation tag -> the quarter turns (counter-clockwise, as np.rot90) that show the stored pixels upright.
TURNS = {3: 2, 6: -1, 8: 1}


@pytest.mark.parametrize('orientation', sorted(TURNS))
def test_the_exif_orientation_turns_the_pixels_before_they_reach_the_network(tmp_path, orientation):
    stored = np.random.RandomState(orientation).randint(0, 256, (30, 50)).astype(np.uint8)
    plain = save_jpeg(tmp_path / 'plain.jpg', stored)
    tagged = save_jpeg(tmp_path / 'tagged.jpg', stored, orientation)    # the same JPEG data, with the tag
    for mode in ('L', 'RGB'):
        np.testing.assert_array_equal(images.read_image(tagged, mode),
                                      np.rot90(images.read_image(plain, mode), TURNS[orientation]))
    batch = images.load_images([tagged], (1, 28, 28))
    np.testing.assert_array_equal(batch, images.to_input([np.rot90(images.read_image(plain), TURNS[orientation])],
                                                         (1, 28, 28)))


def test_a_portrait_photo_is_classified_upright(tmp_path, capsys):
    """Trousers photographed upright, stored as a camera stores a portrait photo
    (turned, with Orientation 6): the shipped LeNet sees them upright. The same
    pixels without the tag are no trousers to it (bags, mostly): the tag decides."""
    test_images, labels = load_arrays('fashion-mnist', train=False, download=False)
    paths = []
    for i in np.flatnonzero(labels == 1)[:5]:        # 1: trouser
        photo = np.full((400, 300), 255, np.uint8)
        photo[88:312, 38:262] = np.asarray(Image.fromarray(255 - test_images[i]).resize((224, 224), Image.NEAREST))
        stored = np.rot90(photo, 1)                   # Orientation 6: turn 90 degrees clockwise to show
        paths += [save_jpeg(tmp_path / ('p%d.jpg' % i), stored, 6), save_jpeg(tmp_path / ('s%d.jpg' % i), stored)]
    assert cli.main(['predict', 'lenet', '--pretrained', '--top', '1', *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    tops = [line.split()[-1] for line in lines[1::2]]
    assert tops[0::2] == ['trouser'] * 5 and 'trouser' not in tops[1::2], lines


# --- sizes after resizing: bounded as well as before ------------------------------------------

def under_memory_limit(argv, limit=4 << 30, env=None):
    """``python -c ARGV[0] ARGV[1:]`` in a process of at most ``limit`` bytes of address space, so
    that a size left unbounded fails there (MemoryError) instead of taking this machine's memory."""
    import os
    import resource
    import subprocess
    import sys
    return subprocess.run([sys.executable, '-c', *argv], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})),
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))


CLI = 'import sys; from d2lnets.cli import main; sys.exit(main(sys.argv[1:]))'


def test_an_image_is_bounded_after_resizing_too_on_the_imagenet_path(tmp_path):
    """2 x 60000 pixels pass the decoding limit, but ImageNet's resize (shorter side to 256) would
    make them 256 x 7680000: refused in one line, before the weights are looked for, and by the
    library; an image whose resized form fits is computed in the crop alone, equal to the whole resize."""
    thin = tmp_path / 'thin.png'
    Image.fromarray(np.full((2, 60000), 200, np.uint8)).save(thin)
    message = ('%s resized for ImageNet (shorter side 256) would have 256 x 7680000 = 1966080000 pixels, more '
               'than the %d that d2lnets allows; crop it to a less extreme aspect ratio' % (thin, images.MAX_PIXELS))
    env = {'MXNET_HOME': str(tmp_path / 'mxnet'), 'MXNET_GLUON_REPO': 'http://127.0.0.1:9/'}   # no weights
    proc = under_memory_limit([CLI, 'predict', 'vgg11', '--pretrained', str(thin)], env=env)
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (1, '', ['d2lnets predict: error: ' + message])
    code = ('import sys; from d2lnets.deploy import images\n'
            'try:\n    images.imagenet_input(images.read_image(sys.argv[1], "RGB"), source=sys.argv[1])\n'
            'except ValueError as err:\n    print(err)')
    proc = under_memory_limit([code, str(thin)])
    assert (proc.stdout, proc.stderr) == (message + '\n', '')
    # Within the bound, only the centre crop is computed: equal to the whole resize, then cropped ...
    rgb = np.random.RandomState(0).randint(0, 256, (16, 400, 3)).astype(np.uint8)
    whole = images.resize_uint8(rgb, 256, 6400)[16:240, 3088:3312]
    np.testing.assert_array_equal(images.resize_uint8(rgb, 256, 6400, crop=(16, 3088, 224, 224)), whole)
    # ... in the time of the crop: 16 x 20000 pixels, resized 256 x 320000 (1.97 GB as OpenCV's int64 sums).
    start = time.perf_counter()
    assert images.imagenet_input(np.zeros((16, 20000, 3), np.uint8)).shape == (3, 224, 224)
    assert time.perf_counter() - start < 1


def test_an_onnx_input_shape_is_bounded_before_any_image_is_resized_to_it(tmp_path):
    """A fully convolutional ONNX file (NiN) whose input says 200000 x 200000: one line naming the file,
    not a resize to 4e10 pixels per image."""
    import onnx
    import d2lnets
    from d2lnets.deploy.export import export
    net = d2lnets.get_model('nin')
    net.initialize()
    export(net, str(tmp_path / 'nin'), (1, 1, 224, 224), 'onnx', metadata={'model': 'nin'})
    model = onnx.load(str(tmp_path / 'nin.onnx'))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 200000
    onnx.save(model, str(tmp_path / 'big.onnx'))
    picture = tmp_path / 'p.png'
    make_picture(picture)
    proc = under_memory_limit([CLI, 'predict', 'nin', '--onnx', str(tmp_path / 'big.onnx'), str(picture)])
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (1, '', [
        'd2lnets predict: error: the input shape of %s (1, 1, 200000, 200000): each side must be at most '
        '16384, got 200000' % (tmp_path / 'big.onnx')])
