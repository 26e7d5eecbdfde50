from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("用户名 / 手机号 / 身份证号 — Username, phone or ID number",
                           validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码 / Password", validators=[DataRequired(), Length(max=256)])
    next = HiddenField()
