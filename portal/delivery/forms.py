from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired


class SendCodeForm(FlaskForm):
    submit = SubmitField("Email me a code")


class CodeForm(FlaskForm):
    code = StringField(
        "Six-digit code",
        validators=[DataRequired("Enter the six-digit code from the email.")],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": 12},
    )
    submit = SubmitField("Open my data")
