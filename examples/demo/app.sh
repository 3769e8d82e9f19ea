echo "app starting with $(ls /app/deps | wc -l) dependencies"
