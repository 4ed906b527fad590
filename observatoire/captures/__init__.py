"""Captures from a person's own browser (issue 21): what an applicant or a volunteer saw
while trying to book, in their everyday browser, recorded with the same classification
and evidence rules as the robot.

- `contributors`: pseudonyms, roles (volunteer / applicant) and hashed personal tokens;
- `reception`: validation, classification by the platform adapter, storage as a
  `manual` probe with the server's own reception stamp;
- `ocr`: phone screenshots read by tesseract, exact platform sentences only;
- `crosscheck`: a capture contradicted by the robot within minutes waits for review;
- `review`: the captures waiting for a person (out of every figure meanwhile), accepted
  into the figures or rejected for good (the evidence stays);
- `delete`: a contributor's captures and the evidence no other probe uses;
- `routes`: `POST /api/captures` and the "Déposer une capture d'écran" page;
- `cli`: `contributor add/list/delete`, `captures review/accept/reject`.
"""
