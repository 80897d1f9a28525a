from django.contrib import admin

from .models import AuditEntry, ScheduledRemoval


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log: staff read it; nobody edits it."""

    list_display = ("when", "username", "action", "storm_id", "outcome", "via", "remote_addr")
    list_filter = ("action", "outcome", "via")
    search_fields = ("storm_id", "username", "detail")
    date_hierarchy = "when"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScheduledRemoval)
class ScheduledRemovalAdmin(admin.ModelAdmin):
    """Removals that kill/<wait-secs> scheduled; deleting a pending one cancels it."""

    list_display = ("storm_id", "due_at", "created_by_username", "attempts", "done_at", "outcome")
    list_filter = ("outcome",)
    search_fields = ("storm_id", "created_by_username")
    readonly_fields = [f.name for f in ScheduledRemoval._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
