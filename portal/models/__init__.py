"""All models, importable from one place (Alembic autogenerate and the services use this)."""

from portal.models.attachments import Attachment, AttachmentChunk
from portal.models.audit import AuditEvent
from portal.models.base import Base, utcnow
from portal.models.canary import EncryptionCanary
from portal.models.connections import ConnectionConfig, ConnectionType, ManualWebhook, ManualWebhookVersion
from portal.models.datasets import CollectionStep, DatasetConfig
from portal.models.deliveries import DeliveryState, PackageDelivery
from portal.models.notifications import (
    DeliveryMode,
    Notification,
    NotificationPreference,
    NotificationStatus,
)
from portal.models.oauth import OAuthAccessToken, OAuthClient
from portal.models.packages import AccessPackage, AccessPackageChunk
from portal.models.policies import DEFAULT_ACCESS_POLICY_KEY, Policy, PolicyRule, RuleTarget
from portal.models.rate_limits import RateLimitCounter
from portal.models.requests import ManualInput, PrivacyRequest, RequestStatus
from portal.models.storage import StorageConfig
from portal.models.tasks import DeadlineExtension, RequestNote, Task, WebhookOwner
from portal.models.users import ApiToken, Role, User

__all__ = [
    "DEFAULT_ACCESS_POLICY_KEY",
    "AccessPackage",
    "AccessPackageChunk",
    "ApiToken",
    "Attachment",
    "AttachmentChunk",
    "AuditEvent",
    "Base",
    "CollectionStep",
    "ConnectionConfig",
    "ConnectionType",
    "DatasetConfig",
    "DeadlineExtension",
    "DeliveryMode",
    "DeliveryState",
    "EncryptionCanary",
    "ManualInput",
    "ManualWebhook",
    "ManualWebhookVersion",
    "Notification",
    "NotificationPreference",
    "NotificationStatus",
    "OAuthAccessToken",
    "OAuthClient",
    "PackageDelivery",
    "Policy",
    "PolicyRule",
    "PrivacyRequest",
    "RateLimitCounter",
    "RequestNote",
    "RequestStatus",
    "Role",
    "RuleTarget",
    "StorageConfig",
    "Task",
    "User",
    "WebhookOwner",
    "utcnow",
]
