// An image -> LeNet's 28 x 28 input, as d2lnets/deploy/images.py prepares a file for
// `d2lnets predict` (read_image, fashion_mnist_form, to_input), step by step and in the
// same integer arithmetic as Pillow, so that the same pixels give the same input.
'use strict';

var D2lPreprocess = (function () {
  // Fashion-MNIST's side (images.FORM_SIZE) and Zalando's trim threshold (images.TRIM_THRESHOLD).
  var SIZE = 28;
  var TRIM_THRESHOLD = 0.05 * 255;
  // What the page decodes at most, checked from the header (images.py allows 89,478,485 pixels;
  // a browser tab holds every pixel four times over, as RGBA).
  var MAX_PIXELS = 4096 * 4096;
  var MAX_FILE_BYTES = 32 * 1024 * 1024;
  // Pillow's fixed point of resampling (libImaging/Resample.c): coefficients in 1/2^22.
  var PRECISION_BITS = 32 - 8 - 2;

  // --- the header: (width, height) before anything is decoded ---------------------------------

  function u16be(b, i) { return (b[i] << 8) | b[i + 1]; }
  function u16le(b, i) { return b[i] | (b[i + 1] << 8); }
  function u32be(b, i) { return ((b[i] << 24) >>> 0) + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]); }
  function i32le(b, i) { return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24); }
  function ascii(b, i, n) { return String.fromCharCode.apply(null, Array.prototype.slice.call(b, i, i + n)); }

  function jpegSize(b) {
    var i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xFF) return null;
      var marker = b[i + 1];
      if (marker === 0xFF) { i += 1; continue; }             // fill bytes
      if (marker === 0xD8 || marker === 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { i += 2; continue; }
      // SOF0 ... SOF15 carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
      if (marker >= 0xC0 && marker <= 0xCF && marker !== 0xC4 && marker !== 0xC8 && marker !== 0xCC) {
        return { type: 'JPEG', height: u16be(b, i + 5), width: u16be(b, i + 7) };
      }
      i += 2 + u16be(b, i + 2);
    }
    return null;
  }

  function webpSize(b) {
    var chunk = ascii(b, 12, 4);
    if (chunk === 'VP8 ' && b.length >= 30) {
      return { type: 'WebP', width: u16le(b, 26) & 0x3FFF, height: u16le(b, 28) & 0x3FFF };
    }
    if (chunk === 'VP8L' && b.length >= 25) {
      return { type: 'WebP', width: 1 + (b[21] | ((b[22] & 0x3F) << 8)),
               height: 1 + ((b[22] >> 6) | (b[23] << 2) | ((b[24] & 0x0F) << 10)) };
    }
    if (chunk === 'VP8X' && b.length >= 30) {
      return { type: 'WebP', width: 1 + (b[24] | (b[25] << 8) | (b[26] << 16)),
               height: 1 + (b[27] | (b[28] << 8) | (b[29] << 16)) };
    }
    return null;
  }

  // {type, width, height} of a PNG, JPEG, GIF, WebP or BMP file's bytes; null for anything else.
  function imageSize(b) {
    if (b.length >= 24 && b[0] === 0x89 && ascii(b, 1, 3) === 'PNG' && ascii(b, 12, 4) === 'IHDR') {
      return { type: 'PNG', width: u32be(b, 16), height: u32be(b, 20) };
    }
    if (b.length >= 4 && b[0] === 0xFF && b[1] === 0xD8 && b[2] === 0xFF) return jpegSize(b);
    if (b.length >= 10 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) {
      return { type: 'GIF', width: u16le(b, 6), height: u16le(b, 8) };
    }
    if (b.length >= 26 && ascii(b, 0, 2) === 'BM') {
      return { type: 'BMP', width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22)) };
    }
    if (b.length >= 16 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return webpSize(b);
    return null;
  }

  // --- grayscale: read_image(path, 'L') -------------------------------------------------------

  // Pillow's alpha_composite (libImaging/AlphaComposite.c) of one channel over opaque white.
  function overWhite(value, alpha) {
    if (alpha === 0) return 255;
    var coef1 = alpha * 128;                    // src.a * 255 * 255 * 2^7 / 65025
    var coef2 = 255 * 128 - coef1;
    var t = value * coef1 + 255 * coef2 + (0x80 << 7);
    return (((t >> 8) + t) >> 8) >> 7;          // SHIFTFORDIV255, then >> PRECISION_BITS (7)
  }

  // RGBA bytes (un-premultiplied, as getImageData gives them) -> Uint8Array of gray levels:
  // transparent pixels over white, then Pillow's L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
  function toGray(rgba, width, height) {
    var gray = new Uint8Array(width * height);
    for (var i = 0, p = 0; i < gray.length; i++, p += 4) {
      var r = rgba[p], g = rgba[p + 1], b = rgba[p + 2], a = rgba[p + 3];
      if (a !== 255) { r = overWhite(r, a); g = overWhite(g, a); b = overWhite(b, a); }
      gray[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    }
    return gray;
  }

  // --- fashion_mnist_form ---------------------------------------------------------------------

  // images._background: the median of the border pixels (np.median: the mean of the two middle ones).
  function background(gray, w, h) {
    var border = [];
    for (var x = 0; x < w; x++) border.push(gray[x]);
    for (x = 0; x < w; x++) border.push(gray[(h - 1) * w + x]);
    for (var y = 0; y < h; y++) border.push(gray[y * w]);
    for (y = 0; y < h; y++) border.push(gray[y * w + w - 1]);
    border.sort(function (a, b) { return a - b; });
    var n = border.length;
    return n % 2 ? border[(n - 1) / 2] : (border[n / 2 - 1] + border[n / 2]) / 2;
  }

  // images._trim: {gray, w, h} cropped to the rows and columns that differ from the background;
  // null when none does (an empty drawing).
  function trim(gray, w, h, bg) {
    var top = h, bottom = -1, left = w, right = -1;
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        if (Math.abs(gray[y * w + x] - bg) > TRIM_THRESHOLD) {
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    if (bottom < 0) return null;
    var cw = right - left + 1, ch = bottom - top + 1, out = new Uint8Array(cw * ch);
    for (y = 0; y < ch; y++) out.set(gray.subarray((top + y) * w + left, (top + y) * w + left + cw), y * cw);
    return { gray: out, w: cw, h: ch };
  }

  function sinc(x) {
    if (x === 0) return 1;
    x *= Math.PI;
    return Math.sin(x) / x;
  }

  function lanczos(x) { return (-3 <= x && x < 3) ? sinc(x) * sinc(x / 3) : 0; }

  // Pillow's precompute_coeffs + normalize_coeffs_8bpc for LANCZOS (support 3):
  // {bounds: [xmin, count] per output pixel, k: integer weights in 1/2^22, ksize}.
  function coefficients(inSize, outSize) {
    var scale = inSize / outSize, filterscale = Math.max(scale, 1);
    var support = 3 * filterscale, ksize = Math.ceil(support) * 2 + 1;
    var bounds = new Int32Array(outSize * 2), k = new Float64Array(outSize * ksize);
    for (var xx = 0; xx < outSize; xx++) {
      var center = (xx + 0.5) * scale, ww = 0, ss = 1 / filterscale;
      var xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      var xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      var w = [];
      for (var x = 0; x < xmax; x++) {
        w.push(lanczos((x + xmin - center + 0.5) * ss));
        ww += w[x];
      }
      for (x = 0; x < xmax; x++) {
        var c = ww !== 0 ? w[x] / ww : w[x];
        k[xx * ksize + x] = c < 0 ? Math.trunc(-0.5 + c * (1 << PRECISION_BITS))
                                  : Math.trunc(0.5 + c * (1 << PRECISION_BITS));
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { bounds: bounds, k: k, ksize: ksize };
  }

  // clip8: the sum >> 22, clamped to 0 ... 255 (sums stay exact in doubles).
  function clip8(sum) { return Math.min(255, Math.max(0, Math.floor(sum / (1 << PRECISION_BITS)))); }

  // One pass of Pillow's 8-bit resampling (ImagingResampleHorizontal_8bpc / _Vertical_8bpc) along
  // rows (horizontal) or columns: (w x h) -> (nw x h) or (w x nh), rounded to 8 bits.
  function pass(src, w, h, horizontal, n) {
    var c = coefficients(horizontal ? w : h, n);
    var ow = horizontal ? n : w, oh = horizontal ? h : n, out = new Uint8Array(ow * oh);
    for (var y = 0; y < oh; y++) {
      for (var x = 0; x < ow; x++) {
        var o = horizontal ? x : y, first = c.bounds[2 * o], count = c.bounds[2 * o + 1];
        var sum = 1 << (PRECISION_BITS - 1);
        for (var i = 0; i < count; i++) {
          sum += (horizontal ? src[y * w + first + i] : src[(first + i) * w + x]) * c.k[o * c.ksize + i];
        }
        out[y * ow + x] = clip8(sum);
      }
    }
    return out;
  }

  // Pillow's Image.resize((nw, nh), LANCZOS) of an 'L' image: two passes, each rounded to 8 bits,
  // a pass whose size is kept skipped. Pillow 13.0.0 (the version constraints.txt pins) does the
  // vertical pass first when both sides shrink and the height loses more than twice what the width
  // loses (measured on thousands of sizes against it: every shrinking size agreed, and it never
  // does so when enlarging); tests/test_browser.py holds the page to it.
  function resizeLanczos(gray, w, h, nw, nh) {
    var verticalFirst = h > nh && w >= nw && (h - nh) > 2 * (w - nw);
    if (verticalFirst) {
      var tall = nh !== h ? pass(gray, w, h, false, nh) : gray;
      return nw !== w ? pass(tall, w, nh, true, nw) : tall;
    }
    var wide = nw !== w ? pass(gray, w, h, true, nw) : gray;
    return nh !== h ? pass(wide, nw, h, false, nh) : wide;
  }

  // Python's round(): halves to even.
  function roundHalfEven(x) {
    var r = Math.round(x);
    return (Math.abs(x % 1) === 0.5) ? 2 * Math.round(x / 2) : r;
  }

  // fashion_mnist_form: gray levels (w x h) -> {form: 28 x 28 Uint8Array, empty: no pixel differs
  // from the background (the form is then all black, as predict gives it)}.
  function fashionMnistForm(gray, w, h) {
    var bg = background(gray, w, h);
    if (bg > 127) {
      var inverted = new Uint8Array(gray.length);
      for (var i = 0; i < gray.length; i++) inverted[i] = 255 - gray[i];
      gray = inverted;
      bg = 255 - bg;
    }
    var obj = trim(gray, w, h, bg);
    if (w === SIZE && h === SIZE) return { form: gray, empty: obj === null };
    var empty = obj === null;
    if (empty) obj = { gray: gray, w: w, h: h };
    var scale = SIZE / Math.max(obj.h, obj.w);
    var nh = Math.max(1, roundHalfEven(obj.h * scale)), nw = Math.max(1, roundHalfEven(obj.w * scale));
    var small = resizeLanczos(obj.gray, obj.w, obj.h, nw, nh);
    var form = new Uint8Array(SIZE * SIZE);
    var top = Math.floor((SIZE - nh) / 2), left = Math.floor((SIZE - nw) / 2);
    for (var y = 0; y < nh; y++) form.set(small.subarray(y * nw, (y + 1) * nw), (top + y) * SIZE + left);
    return { form: form, empty: empty };
  }

  // to_input: a 28 x 28 form -> Float32Array, (pixel * scale - mean) / std in float32.
  function toInput(form, normalization) {
    var f = Math.fround, scale = f(normalization.scale), mean = f(normalization.mean), std = f(normalization.std);
    var x = new Float32Array(form.length);
    for (var i = 0; i < form.length; i++) x[i] = f(f(f(form[i] * scale) - mean) / std);
    return x;
  }

  return {
    SIZE: SIZE, MAX_PIXELS: MAX_PIXELS, MAX_FILE_BYTES: MAX_FILE_BYTES,
    imageSize: imageSize, toGray: toGray, fashionMnistForm: fashionMnistForm, toInput: toInput
  };
}());
