"""Flask-WTF forms shared by several blueprints."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    """Email and password, the first step of signing in."""

    email = EmailField(
        "Email",
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="An email address has at most 254 characters."),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Enter your password."),
            Length(max=1024, message="That password is too long."),
        ],
    )


class ConfirmPasswordForm(FlaskForm):
    """The password asked again before a security change (sudo mode)."""

    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Enter your password."),
            Length(max=1024, message="That password is too long."),
        ],
    )
