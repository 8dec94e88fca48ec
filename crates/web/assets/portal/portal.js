// Progressive enhancement only: every page works without this file.
// An invitation or password link carries its token in the URL's fragment (never sent to a
// server, so never in a log); put it in the form and take it out of the address bar.
(function () {
  var field = document.getElementById("token");
  var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (field && match) {
    field.value = decodeURIComponent(match[1]);
    history.replaceState(null, "", window.location.pathname);
    var password = document.getElementById("password");
    if (password) { password.focus(); }
  }
})();
