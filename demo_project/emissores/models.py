from django.db import models


class Emissor(models.Model):
    """An issuer, as in the support question that started pa_dbhealth."""

    nome = models.CharField(max_length=200)
    cnpj = models.CharField(max_length=18, unique=True)
    criado_em = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["nome"]
        verbose_name_plural = "emissores"

    def __str__(self) -> str:
        return self.nome
