'use strict';
// The review page of `vog review`: renders the JSON in #data, takes decisions by key or
// button, keeps them in localStorage under the scores file's SHA-256, exports CSV.
(function () {
  var page = JSON.parse(document.getElementById('data').textContent);
  var examples = page.examples;
  var key = 'vog-review:' + page.scores_sha256;
  var state = load();
  var at = Math.min(state.at || 0, examples.length - 1);
  var relabelling = false;
  var $ = function (id) { return document.getElementById(id); };

  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(key) || '{}');
      return { decisions: saved.decisions || {}, history: saved.history || [], at: saved.at || 0 };
    } catch (e) {
      return { decisions: {}, history: [], at: 0 };
    }
  }

  function save() {
    try {
      window.localStorage.setItem(key, JSON.stringify({ decisions: state.decisions, history: state.history, at: at }));
    } catch (e) {
      $('progress').textContent += ' (this browser does not keep them: export before closing)';
    }
  }

  // A flag column (label_issue) reads true/false, as in the scores file; a score, 4 digits.
  function show(column, v) {
    return page.flags.indexOf(column) >= 0 ? String(v !== 0) : v.toPrecision(4);
  }

  function className(label) {
    return label === null || label === undefined ? '' : (page.classes[label] || String(label));
  }

  // The key that picks class i while relabelling: 0-9, then a-z without the command keys.
  var classKeys = (function () {
    var keys = '0123456789abcefgijlmnopqstvwxyz'.split('');
    return page.classes.map(function (_, i) { return i < keys.length ? keys[i] : null; });
  })();

  function decide(action, label) {
    var ex = examples[at];
    state.history.push({ id: ex.id, before: state.decisions[ex.id] || null, at: at });
    state.decisions[ex.id] = action === 'relabel' ? { action: action, label: label } : { action: action };
    relabelling = false;
    if (at < examples.length - 1) { at += 1; }
    save();
    render();
  }

  function undo() {
    var last = state.history.pop();
    if (!last) { return; }
    if (last.before) { state.decisions[last.id] = last.before; } else { delete state.decisions[last.id]; }
    at = last.at;
    relabelling = false;
    save();
    render();
  }

  function move(step) {
    at = Math.max(0, Math.min(examples.length - 1, at + step));
    relabelling = false;
    save();
    render();
  }

  function cell(tr, tag, text) {
    var c = document.createElement(tag);
    c.textContent = text;
    tr.appendChild(c);
    return c;
  }

  function fillTable(table, rows) {
    table.textContent = '';
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      cell(tr, 'th', r[0]);
      cell(tr, 'td', r[1]);
      table.appendChild(tr);
    });
  }

  function describe(d) {
    if (!d) { return 'undecided'; }
    return d.action === 'relabel' ? 'relabel as ' + className(d.label) : d.action;
  }

  // The other members of the example's set of near-duplicates, captioned.
  function showTwins(ex) {
    var box = $('twins');
    box.textContent = '';
    ex.twins.forEach(function (t) {
      var fig = document.createElement('figure');
      var img = document.createElement('img');
      img.src = t.image;
      img.alt = t.id;
      var cap = document.createElement('figcaption');
      cap.textContent = t.id + ' (' + t.split + ', ' + (t.split === 'test' ? 'labelled ' : 'trained as ') + className(t.trained) + ')';
      fig.appendChild(img);
      fig.appendChild(cap);
      box.appendChild(fig);
    });
  }

  function render() {
    var ex = examples[at];
    var decided = Object.keys(state.decisions).length;
    $('progress').textContent = decided + ' / ' + examples.length + ' decided';
    $('image').src = ex.image;
    $('image').alt = ex.id;
    $('position').textContent = (at + 1) + ' of ' + examples.length;
    var facts = [
      ['id', ex.id],
      [page.column, show(page.column, ex.score) + ' (rank ' + ex.rank + (page.lowest_first ? ', lowest first)' : ', highest first)')],
      ['given label', className(ex.trained)]
    ];
    if (ex.label !== ex.trained) { facts.push(['original label', className(ex.label)]); }
    facts.push(['predicted', className(ex.predicted)]);
    if (ex.suggested !== null && ex.suggested !== undefined) { facts.push(['suggested (out-of-sample)', className(ex.suggested)]); }
    if (ex.planted) { facts.push(['planted', ex.planted]); }
    facts.push(['split', ex.split]);
    if (ex.set) { facts.push(['near-duplicate set', ex.set + ' (' + (ex.twins.length + 1) + ' images in this file)']); }
    fillTable($('facts'), facts);
    showTwins(ex);
    fillTable($('scores'), page.columns.map(function (c, i) {
      var v = ex.values[i];
      return [c, v === null || v === undefined ? '-' : show(c, Number(v))];
    }));
    var d = state.decisions[ex.id];
    $('decision').textContent = 'Decision: ' + describe(d);
    $('decision').className = d ? d.action : '';
    $('relabel').hidden = !relabelling;
    var strip = $('filmstrip').children;
    for (var i = 0; i < strip.length; i++) {
      var s = state.decisions[examples[i].id];
      strip[i].className = (s ? s.action : '') + (i === at ? ' current' : '');
    }
    // Scrolls the strip alone (scrollIntoView would scroll the page too).
    var film = $('filmstrip');
    if (strip[at]) { film.scrollLeft = strip[at].offsetLeft - film.offsetLeft - film.clientWidth / 2; }
  }

  function csv() {
    var quote = function (v) { return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; };
    var lines = ['id,action,label,scores_sha256'];
    examples.forEach(function (ex) {
      var d = state.decisions[ex.id];
      if (!d) { return; }
      var label = d.action === 'relabel' ? page.tokens[d.label] : '';
      lines.push([quote(ex.id), d.action, quote(label), page.scores_sha256].join(','));
    });
    return lines.join('\n') + '\n';
  }

  function exportCsv() {
    var blob = new Blob([csv()], { type: 'text/csv' });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'decisions.csv';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function build() {
    $('title').textContent = 'Review: ' + examples.length + ' examples of ' + page.scores + ' by ' + page.column;
    var strip = $('filmstrip');
    examples.forEach(function (ex, i) {
      var img = document.createElement('img');
      img.src = ex.image;
      img.alt = ex.id;
      img.title = '#' + ex.rank + ' ' + ex.id;
      img.addEventListener('click', function () { at = i; relabelling = false; save(); render(); });
      strip.appendChild(img);
    });
    var list = $('classes');
    page.classes.forEach(function (name, i) {
      var b = document.createElement('button');
      b.textContent = (classKeys[i] ? classKeys[i] + ': ' : '') + name;
      b.addEventListener('click', function () { decide('relabel', i); });
      list.appendChild(b);
    });
    document.querySelectorAll('#actions button[data-action]').forEach(function (b) {
      b.addEventListener('click', function () { command(b.dataset.action); });
    });
    $('undo').addEventListener('click', undo);
    $('prev').addEventListener('click', function () { move(-1); });
    $('next').addEventListener('click', function () { move(1); });
    $('export').addEventListener('click', exportCsv);
    $('help-button').addEventListener('click', function () { $('help').hidden = !$('help').hidden; });
    document.addEventListener('keydown', onKey);
  }

  function command(action) {
    if (action === 'relabel') {
      relabelling = true;
      render();
    } else {
      decide(action);
    }
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (relabelling) {
      var i = classKeys.indexOf(e.key);
      if (i >= 0) { decide('relabel', i); e.preventDefault(); return; }
      if (e.key === 'Escape') { relabelling = false; render(); return; }
    }
    var keys = {
      ArrowRight: function () { move(1); },
      ArrowLeft: function () { move(-1); },
      k: function () { command('keep'); },
      d: function () { command('drop'); },
      r: function () { command('relabel'); },
      '?': function () { command('unsure'); },
      u: undo,
      h: function () { $('help').hidden = !$('help').hidden; }
    };
    if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
  }

  build();
  render();
})();
