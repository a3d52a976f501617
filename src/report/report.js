document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
[['collapse', false], ['expand', true]].forEach(function (pair) {
  var button = document.getElementById(pair[0]);
  if (!button) { return; }
  button.addEventListener('click', function () {
    document.querySelectorAll('details.section').forEach(function (d) { d.open = pair[1]; });
  });
});
// A link in the contents opens its section.
document.querySelectorAll('#toc a').forEach(function (a) {
  a.addEventListener('click', function () {
    var d = document.getElementById(a.getAttribute('href').slice(1));
    if (d) { d.open = true; }
  });
});
