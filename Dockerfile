FROM python:3.11-slim
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir . && useradd --system poststelle
USER poststelle
EXPOSE 8080
CMD ["poststelle", "run"]
