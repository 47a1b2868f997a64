// Starts Swagger UI from the locally served bundle (kept out of the HTML: no inline scripts).
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
