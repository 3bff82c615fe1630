"""All ORM models; importing this package registers every table on Base.metadata."""

from common.models.attendance import Attendance
from common.models.auth import AuthSession
from common.models.base import Base
from common.models.classes import ClassMember, ExamClass, SchoolClass
from common.models.diagnostics import EchoRecord
from common.models.faces import FaceEnrollment, FacePhoto
from common.models.files import FileDeletion, StoredFile
from common.models.jobs import Job
from common.models.submissions import Attempt, Submission, SubmissionImport
from common.models.tests import Exam, Option, Question
from common.models.users import Role, User

__all__ = [
    "Attempt",
    "Attendance",
    "AuthSession",
    "Base",
    "ClassMember",
    "EchoRecord",
    "Exam",
    "ExamClass",
    "FaceEnrollment",
    "FacePhoto",
    "FileDeletion",
    "Job",
    "Option",
    "Question",
    "Role",
    "SchoolClass",
    "StoredFile",
    "Submission",
    "SubmissionImport",
    "User",
]
