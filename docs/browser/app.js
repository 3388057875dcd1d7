// The page: load the exported LeNet in onnxruntime-web, take an input (the canvas, a test
// image, an upload), run it and draw every output. Each failure ends in a message on the
// page (#message), never in an exception in the console.
'use strict';

(function () {
  var P = D2lPreprocess;
  // What the docs build writes (docs/hooks.py): the model, its description, the test images.
  var GENERATED = '../generated/browser/';

  var state = {
    session: null, model: null, samples: null,
    pending: null,        // the input waiting to run: {source, form, empty}
    running: null,        // the Promise of the run in progress
    reading: null,        // the Promise of an upload being read and decoded
    last: null,           // what is shown: {source, input, probabilities, answer, outputs}
    message: ''
  };

  var $ = function (id) { return document.getElementById(id); };

  function say(text) {
    state.message = text;
    $('message').textContent = text;
    $('message').className = text ? 'shown' : '';
  }

  // --- drawing the outputs ----------------------------------------------------------------------

  function grayImage(ctx, values, w, h, low, high) {
    var img = ctx.createImageData(w, h), span = high - low;
    for (var i = 0; i < w * h; i++) {
      var v = span > 0 ? Math.round(255 * (values[i] - low) / span) : 128;
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    return img;
  }

  // One layer's values at a per-layer scale: {low, high} over every channel.
  function range(values) {
    var low = Infinity, high = -Infinity;
    for (var i = 0; i < values.length; i++) {
      if (values[i] < low) low = values[i];
      if (values[i] > high) high = values[i];
    }
    return { low: low, high: high };
  }

  function fmt(x) { return Math.abs(x) >= 100 || (Math.abs(x) < 0.01 && x !== 0) ? x.toExponential(2) : x.toFixed(3); }

  // The layers' panels, made once from the model's outputs: maps (4-D) as grids, dense outputs as strips.
  function buildLayers() {
    var holder = $('layers');
    state.model.outputs.forEach(function (out, index) {
      var div = document.createElement('div');
      div.className = 'layer ' + (out.shape.length === 4 ? 'maps' : 'strip');
      div.id = 'layer-' + out.name;
      var title = document.createElement('h3');
      var what = out.shape.length === 4
        ? out.shape[1] + ' maps of ' + out.shape[2] + ' x ' + out.shape[3]
        : out.shape[1] + ' values' + (index === 0 ? ' (the logits)' : '');
      title.textContent = out.name + ' (' + out.block + '): ' + what;
      var canvas = document.createElement('canvas');
      canvas.id = 'view-' + out.name;
      if (out.shape.length === 4) {
        var zoom = out.shape[2] >= 28 ? 3 : out.shape[2] >= 14 ? 5 : out.shape[2] >= 10 ? 6 : 11;   // 84, 70, 60, 55 px
        var side = out.shape[2] * zoom, perRow = out.shape[1] <= 6 ? out.shape[1] : 8;
        canvas.width = perRow * (side + 4) - 4;
        canvas.height = Math.ceil(out.shape[1] / perRow) * (side + 4) - 4;
        canvas.dataset.zoom = zoom;
        canvas.dataset.perRow = perRow;
      } else {
        canvas.width = 240;
        canvas.height = 24;
      }
      var scale = document.createElement('p');
      scale.className = 'scale';
      scale.id = 'scale-' + out.name;
      div.appendChild(title);
      div.appendChild(canvas);
      div.appendChild(scale);
      // The logits come first in the file but last in the network: drawn after the other blocks.
      if (index === 0) holder.dataset.logits = out.name;
      holder.appendChild(div);
    });
    holder.appendChild($('layer-' + holder.dataset.logits));
    var table = $('probabilities');
    state.model.classes.forEach(function (name, i) {
      var row = table.insertRow();
      row.id = 'class-' + i;
      row.insertCell().textContent = name;
      var bar = document.createElement('span');
      bar.className = 'bar';
      row.insertCell().appendChild(bar);
      row.insertCell().className = 'p';
    });
  }

  function drawLayer(out, values) {
    var canvas = $('view-' + out.name), ctx = canvas.getContext('2d'), r = range(values);
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = false;
    if (out.shape.length === 4) {
      var c = out.shape[1], h = out.shape[2], w = out.shape[3];
      var zoom = +canvas.dataset.zoom, perRow = +canvas.dataset.perRow, tile = document.createElement('canvas');
      tile.width = w;
      tile.height = h;
      for (var ch = 0; ch < c; ch++) {
        tile.getContext('2d').putImageData(grayImage(ctx, values.subarray(ch * h * w, (ch + 1) * h * w), w, h,
                                                     r.low, r.high), 0, 0);
        ctx.drawImage(tile, (ch % perRow) * (w * zoom + 4), Math.floor(ch / perRow) * (h * zoom + 4), w * zoom, h * zoom);
      }
    } else {
      var n = values.length, strip = document.createElement('canvas');
      strip.width = n;
      strip.height = 1;
      strip.getContext('2d').putImageData(grayImage(ctx, values, n, 1, r.low, r.high), 0, 0);
      ctx.drawImage(strip, 0, 0, canvas.width, canvas.height);
    }
    $('scale-' + out.name).textContent = 'per-layer scale: black ' + fmt(r.low) + ', white ' + fmt(r.high);
  }

  function drawInput(form) {
    var canvas = $('input-view'), ctx = canvas.getContext('2d'), tile = document.createElement('canvas');
    tile.width = tile.height = P.SIZE;
    var values = new Float32Array(form.length);
    for (var i = 0; i < form.length; i++) values[i] = form[i];
    tile.getContext('2d').putImageData(grayImage(ctx, values, P.SIZE, P.SIZE, 0, 255), 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, 0, 0, canvas.width, canvas.height);
  }

  function softmax(logits) {
    var max = Math.max.apply(null, logits), e = logits.map(function (z) { return Math.exp(z - max); });
    var sum = e.reduce(function (a, b) { return a + b; }, 0);
    return e.map(function (v) { return v / sum; });
  }

  function show(job, input, results) {
    var outputs = state.model.outputs, logits = Array.prototype.slice.call(results[outputs[0].name].data);
    var probabilities = softmax(logits), best = 0;
    probabilities.forEach(function (p, i) { if (p > probabilities[best]) best = i; });
    drawInput(job.form);
    outputs.forEach(function (out) { drawLayer(out, results[out.name].data); });
    probabilities.forEach(function (p, i) {
      var row = $('class-' + i);
      row.className = i === best ? 'best' : '';
      row.cells[1].firstChild.style.width = (100 * p).toFixed(1) + '%';
      row.cells[2].textContent = p.toFixed(4);
      row.cells[2].dataset.probability = String(p);
    });
    var answer = state.model.classes[best];
    $('answer').textContent = 'answer: ' + answer;
    $('source').textContent = '(' + job.source + ')';
    state.last = { source: job.source, input: Array.prototype.slice.call(input), probabilities: probabilities,
                   answer: best, logits: logits };
  }

  // --- running: one run at a time, the newest input next (drawing queues many) -----------------

  function submit(job) {
    state.pending = job;
    if (!state.running) state.running = drain();
  }

  function drain() {
    var job = state.pending;
    state.pending = null;
    if (!job) { state.running = null; return Promise.resolve(); }
    return run(job).then(drain, function (err) {
      say('The network could not run on this input: ' + (err && err.message ? err.message : err));
      return drain();
    });
  }

  function run(job) {
    if (job.empty) {
      say(job.emptyMessage);
      return Promise.resolve();
    }
    var input = P.toInput(job.form, state.model.normalization);
    var feeds = {};
    feeds[state.model.input] = new ort.Tensor('float32', input, [1, 1, P.SIZE, P.SIZE]);
    return state.session.run(feeds).then(function (results) {
      say('');
      show(job, input, results);
    });
  }

  // --- the inputs ---------------------------------------------------------------------------------

  var draw = $('draw'), pen = draw.getContext('2d', { willReadFrequently: true }), drawing = false, last = null;

  function clearCanvas() {
    pen.fillStyle = '#fff';
    pen.fillRect(0, 0, draw.width, draw.height);
  }

  function fromCanvas() {
    var img = pen.getImageData(0, 0, draw.width, draw.height);
    var form = P.fashionMnistForm(P.toGray(img.data, draw.width, draw.height), draw.width, draw.height);
    submit({ source: 'your drawing', form: form.form, empty: form.empty,
             emptyMessage: 'The canvas is empty: draw a garment on it (black on white), or pick a test image.' });
  }

  function point(event) {
    var rect = draw.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * draw.width / rect.width,
             y: (event.clientY - rect.top) * draw.height / rect.height };
  }

  function stroke(to) {
    pen.strokeStyle = '#000';
    pen.lineWidth = +$('pen').value;
    pen.lineCap = pen.lineJoin = 'round';
    pen.beginPath();
    pen.moveTo(last.x, last.y);
    pen.lineTo(to.x, to.y);
    pen.stroke();
    last = to;
  }

  var frame = null;
  function soon() {      // at most one preparation per animation frame while drawing
    if (frame === null) frame = requestAnimationFrame(function () { frame = null; fromCanvas(); });
  }

  draw.addEventListener('pointerdown', function (event) {
    if (!state.session) return;
    drawing = true;
    draw.setPointerCapture(event.pointerId);
    last = point(event);
    stroke(last);
    soon();
  });
  draw.addEventListener('pointermove', function (event) {
    if (!drawing) return;
    stroke(point(event));
    soon();
  });
  function lift() {
    if (!drawing) return;
    drawing = false;
    if (frame !== null) { cancelAnimationFrame(frame); frame = null; }
    fromCanvas();
  }
  draw.addEventListener('pointerup', lift);
  draw.addEventListener('pointercancel', lift);
  $('clear').addEventListener('click', function () { clearCanvas(); fromCanvas(); });

  function showSamples() {
    var holder = $('samples'), s = state.samples;
    s.indices.forEach(function (index, k) {
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'sample';
      button.id = 'sample-' + k;
      var label = state.model.classes[s.labels[k]];
      button.title = 'test image ' + index + ': ' + label;
      var thumb = document.createElement('canvas');
      thumb.width = thumb.height = P.SIZE;
      var img = thumb.getContext('2d').createImageData(P.SIZE, P.SIZE);
      for (var i = 0; i < P.SIZE * P.SIZE; i++) {
        img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = s.pixels[k][i];
        img.data[4 * i + 3] = 255;
      }
      thumb.getContext('2d').putImageData(img, 0, 0);
      var caption = document.createElement('span');
      caption.textContent = '#' + index + ' ' + label;
      button.appendChild(thumb);
      button.appendChild(caption);
      button.addEventListener('click', function () {
        var form = P.fashionMnistForm(Uint8Array.from(s.pixels[k]), P.SIZE, P.SIZE);
        submit({ source: 'test image ' + index + ', true class ' + label, form: form.form, empty: false });
      });
      holder.appendChild(button);
    });
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(new Uint8Array(reader.result)); };
      reader.onerror = function () { reject(new Error('the file could not be read')); };
      reader.readAsArrayBuffer(file);
    });
  }

  // An upload: size and header checked before anything is decoded.
  function fromFile(file) {
    if (file.size > P.MAX_FILE_BYTES) {
      say(file.name + ' has ' + file.size.toLocaleString('en') + ' bytes, more than the ' +
          P.MAX_FILE_BYTES.toLocaleString('en') + ' this page reads; give a smaller image.');
      return Promise.resolve();
    }
    return readFile(file).then(function (bytes) {
      var size = P.imageSize(bytes);
      if (!size) {
        say(file.name + ' is not an image this page reads: give a PNG, JPEG, GIF, WebP or BMP file.');
        return null;
      }
      var pixels = size.width * size.height;
      if (pixels > P.MAX_PIXELS || size.width < 1 || size.height < 1) {
        say(file.name + ' is a ' + size.type + ' of ' + size.width + ' x ' + size.height + ' = ' +
            pixels.toLocaleString('en') + ' pixels; this page decodes 1 to ' + P.MAX_PIXELS.toLocaleString('en') +
            ' (4096 x 4096): downscale it first.');
        return null;
      }
      var blob = new Blob([bytes], { type: file.type || 'application/octet-stream' });
      return createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none',
                                       imageOrientation: 'from-image' }).then(function (bitmap) {
        var canvas = document.createElement('canvas');
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
        var ctx = canvas.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(bitmap, 0, 0);
        bitmap.close();
        var rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        var form = P.fashionMnistForm(P.toGray(rgba, canvas.width, canvas.height), canvas.width, canvas.height);
        submit({ source: 'upload ' + file.name, form: form.form, empty: false });
      }, function () {
        say(file.name + ' looks like a ' + size.type + ' but the browser cannot decode it (a damaged file?).');
      });
    });
  }

  $('upload').addEventListener('change', function () {
    var file = this.files && this.files[0];
    if (!file || !state.session) return;
    state.reading = fromFile(file).catch(function (err) { say('Cannot read ' + file.name + ': ' + err.message); })
      .then(function () { state.reading = null; });
  });

  // --- start ----------------------------------------------------------------------------------

  function fetchJson(name) {
    return fetch(GENERATED + name).then(function (r) {
      if (!r.ok) throw new Error(name + ': HTTP ' + r.status + ' (build the docs with `make docs`)');
      return r.json();
    });
  }

  function describe(model) {
    var w = model.weights;
    $('weights').innerHTML = '';
    var text = 'Running: the shipped LeNet weights (' + w.file + ', sha1 ' + w.sha1.slice(0, 12) + '), ' +
      (100 * w.test_acc).toFixed(2) + '% accuracy on Fashion-MNIST\'s 10,000 test images (its manifest), ' +
      'as the exported ONNX graph (' + model.onnx + ', d2lnets ' + model.d2lnets_version + '), in onnxruntime-web ' +
      model.onnxruntime_web + ' on WebAssembly.';
    $('weights').textContent = text;
  }

  var ready = (typeof ort === 'undefined'
    ? Promise.reject(new Error('onnxruntime-web is missing (build the docs with `make docs`)'))
    : Promise.all([fetchJson('model.json'), fetchJson('samples.json')]).then(function (loaded) {
      state.model = loaded[0];
      state.samples = loaded[1];
      ort.env.wasm.numThreads = 1;       // no cross-origin isolation on a static site: one thread
      ort.env.wasm.wasmPaths = new URL(GENERATED + 'ort/', location.href).href;   // else relative to ort's script
      return ort.InferenceSession.create(GENERATED + state.model.onnx, { executionProviders: ['wasm'] });
    }).then(function (session) {
      state.session = session;
      describe(state.model);
      buildLayers();
      showSamples();
      clearCanvas();
      $('sample-0').click();
    })).catch(function (err) {
      say('The page could not start: ' + (err && err.message ? err.message : err));
    });

  // For tests and the curious: what is shown, and a Promise of the moment nothing is left to run.
  window.lenetPage = {
    state: state,
    ready: ready,
    settled: function () {
      return ready.then(function wait() {
        return state.running || state.pending || state.reading || frame !== null
          ? new Promise(function (r) { setTimeout(r, 10); }).then(wait) : null;
      });
    },
    canvasPNG: function () { return draw.toDataURL('image/png'); }
  };
}());
